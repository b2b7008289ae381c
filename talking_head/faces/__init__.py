"""Face landmarks: one interface, several backends, ``auto`` picks what can run here."""
from .base import FaceLandmarks, LandmarkBackend, choose_face, detect_face, get_backend, available_backends

__all__ = ["FaceLandmarks", "LandmarkBackend", "choose_face", "detect_face", "get_backend", "available_backends"]
