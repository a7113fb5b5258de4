"""Time stamps to snapshots: parsing and binning stamps (``stamps``), the automatic snapshot choice (``plan``) and
the run cost model it uses (``cost``)."""
