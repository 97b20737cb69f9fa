"""Built-in augmentations of the discriminator's inputs, and the symmetries of the real images."""
