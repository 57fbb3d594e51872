"""List schemas: the model, its YAML loader, provisioning and drift."""
