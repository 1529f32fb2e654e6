"""Which architectures each publisher's checkpoint files hold (no torch: the CLI reads it to
build its flags, so plot verbs start without importing torch)."""

CIFAR_ARCHS = ("resnet18_cifar", "resnet50_cifar", "preact_resnet18")
IMAGENET_ARCHS = ("resnet18", "resnet50", "wide_resnet50_2")
ARCHS = {  # format -> the architectures its files can hold
    "madrylab": ("resnet18_cifar", "resnet50_cifar") + IMAGENET_ARCHS,
    "robustbench": CIFAR_ARCHS + IMAGENET_ARCHS,
    "torchvision": IMAGENET_ARCHS,
}
FORMATS = tuple(ARCHS)
