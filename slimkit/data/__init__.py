from slimkit.data.digits import load_digits

__all__ = ["load_digits"]
