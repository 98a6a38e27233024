"""facestream detect stage."""
