from backend.api.exports import client_data
from backend.api.exports.routes import blueprint

client_data_blueprint = client_data.blueprint

__all__ = ["blueprint", "client_data_blueprint"]
