"""The tiny-world chapter: layout commit, SDEdit retention and layout-scale SNR of the world's models."""
