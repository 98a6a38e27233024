"""facestream deploy stage."""
