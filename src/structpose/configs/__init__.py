"""Training presets (YAML), loaded by :func:`structpose.train.config.load_config`: quick, paper, tiny."""
