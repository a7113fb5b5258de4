"""Where data lives and what may be written there: dataset folders (``paths``), the commands messages propose
(``hints``), size guards (``guards``), temporaries and pruning (``hygiene``), the parsed-graph cache (``cache``)."""
