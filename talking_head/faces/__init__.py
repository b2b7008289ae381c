"""Face landmarks: one interface, several backends, ``auto`` picks what can run here."""
from .base import FaceFollower, FaceLandmarks, LandmarkBackend, choose_face, detect_face, get_backend, available_backends

__all__ = ["FaceFollower", "FaceLandmarks", "LandmarkBackend", "choose_face", "detect_face", "get_backend",
           "available_backends"]
