from backend.api.appointments.routes import blueprint

__all__ = ["blueprint"]
