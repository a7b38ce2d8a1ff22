"""A torchvision-like ResNet built from torch.nn modules: PyTorch's side of bench_resnet.py,
and the network the conformance tests compare qdaed's ResNet with (they import it from here).

torchvision is not a dependency (and its wheels do not import beside every torch), so this
module rebuilds its ResNet v1.5 (stride on the bottleneck's 3×3 convolution) with the same
module names, hence the same state_dict names as torchvision and as ``qdaed.models.ResNet``.
"""

import torch

nn = torch.nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


LAYOUT = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
          50: (Bottleneck, (3, 4, 6, 3))}


class TorchResNet(nn.Module):
    def __init__(self, depth, num_classes=3, in_channels=1, width=64):
        super().__init__()
        block, counts = LAYOUT[depth]
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for stage, n in enumerate(counts):
            planes = width * 2 ** stage
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                down = None
                if stride != 1 or cin != planes * block.expansion:
                    down = nn.Sequential(
                        nn.Conv2d(cin, planes * block.expansion, 1, stride, bias=False),
                        nn.BatchNorm2d(planes * block.expansion))
                blocks.append(block(cin, planes, stride, down))
                cin = planes * block.expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
