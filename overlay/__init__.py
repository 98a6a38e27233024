"""facestream overlay stage."""
