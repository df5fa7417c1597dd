from ddflow.models.registry import build_model, list_models

__all__ = ["build_model", "list_models"]
