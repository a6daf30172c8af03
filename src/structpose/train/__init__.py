"""The training engine, on PyTorch Lightning.

* :mod:`~structpose.train.config`: typed configuration, YAML presets (``structpose/configs``), overrides;
* :mod:`~structpose.train.data`: the train/validation split and the DataModules (images, poses only);
* :mod:`~structpose.train.base`, :mod:`~structpose.train.ae_module`, :mod:`~structpose.train.image_module`:
  the LightningModules of the stages; :mod:`~structpose.train.optim`: Adam and the LR schedules;
* :mod:`~structpose.train.engine`: :func:`~structpose.train.engine.fit_stage` (Trainer, checkpoints,
  resume, logs); :mod:`~structpose.train.export`: safetensors and ONNX;
* :mod:`~structpose.train.pipeline`: :func:`~structpose.train.pipeline.train_all` and
  :func:`~structpose.train.pipeline.predict`.
"""
