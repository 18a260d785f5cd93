"""Running networks: device choice, tiled prediction with seamless blending, out-of-memory
fallback, test-time augmentation and membrane prediction with any registered model."""
