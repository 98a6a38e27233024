"""facestream capture stage."""
