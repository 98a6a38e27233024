"""facestream trainer stage."""
