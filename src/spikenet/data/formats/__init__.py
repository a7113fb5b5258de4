"""Reading files: the reference layouts' text and JSON (``parsing``), delimited tables of own data (``table``), node
id renumbering (``node_ids``)."""
