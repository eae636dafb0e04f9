"""Entry points for other toolkits (optional dependencies): :mod:`csmoe_model.integrations.timm`."""
