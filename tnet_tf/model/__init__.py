"""The architecture: TNet (``tnet``), its modules (``layers``), feature
extractors (``backbones``), how cells are read (``resampling``) from where
(``sources``), its output record (``outputs``), adaptive attention on its
steps (``adaptive``), input checks (``inputs``) and the full-image
baselines (``baselines``)."""
