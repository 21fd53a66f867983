"""The architecture: TNet (``tnet``), its modules (``layers``), feature
extractors (``backbones``), how cells are read (``resampling``), input checks
(``inputs``) and the full-image baselines (``baselines``)."""
