from slimkit.models.digits_cnn import DigitsCNN
from slimkit.models.mobilenetv2 import MobileNetV2, mobilenet_v2
from slimkit.models.resnet import ResNet, resnet18, resnet50

__all__ = ["DigitsCNN", "MobileNetV2", "ResNet", "mobilenet_v2", "resnet18", "resnet50"]
