from slimkit.models.digits_cnn import DigitsCNN

__all__ = ["DigitsCNN"]
