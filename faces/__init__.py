"""Faces in single images, in one process: reading photos, detect + embed, enrollment."""
