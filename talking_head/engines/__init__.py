"""Animation engines behind one interface, chosen by name or ``auto``."""
from .base import (
    DrivingFrame,
    Engine,
    EngineOutOfMemory,
    Prepared,
    SourceStore,
    auto_engine_name,
    create_engine,
    engine_class,
    engine_names,
    engine_status,
    register_engine,
)

__all__ = ["DrivingFrame", "Engine", "EngineOutOfMemory", "Prepared", "SourceStore", "auto_engine_name", "create_engine", "engine_class", "engine_names",
           "engine_status", "register_engine"]
