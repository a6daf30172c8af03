"""The networks of Tekin et al. (BMVC 2016): pose normaliser, pose auto-encoder, image CNN, compositions."""

from structpose.models.autoencoder import AEConfig, AEDecoder, DenoisingAutoencoder, PoseAutoencoder
from structpose.models.cnn import CNNConfig, PaperCNN, default_crop, preprocess
from structpose.models.normalize import PoseNormalizer
from structpose.models.structured import DirectCNN, StructuredNet

__all__ = [
    "AEConfig",
    "AEDecoder",
    "CNNConfig",
    "DenoisingAutoencoder",
    "DirectCNN",
    "PaperCNN",
    "PoseAutoencoder",
    "PoseNormalizer",
    "StructuredNet",
    "default_crop",
    "preprocess",
]
