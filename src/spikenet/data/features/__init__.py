"""Node features: standardisation and FastRP (``arrays``), SMF (``smf``), DeepWalk (``deepwalk``), feature files
(``files``), the feature cache (``cache``) and ``dataset.features`` (``choice``: what ``load_dataset`` attaches)."""
