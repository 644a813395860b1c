"""sk.load hands each module its state-dict version, as a state dict saved by PyTorch would:
modules that upgrade older layouts on load (torchvision's MNASNet) refuse one without it."""

import torch
from torch import nn

import slimkit as sk


class Versioned(nn.Module):
    _version = 2

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args):
        if local_metadata.get("version") not in (1, 2):  # what MNASNet checks
            raise ValueError(f"version should be set to 1 or 2 instead of "
                             f"{local_metadata.get('version')}")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args)


def test_a_module_that_reads_its_state_version_loads(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(4, 6)
    small = sk.prune(Versioned(), sk.PruneConfig(ratio=0.5), x)
    sk.save(small, tmp_path / "a", factory="tests.artifact.test_state_versions:Versioned")
    again = sk.load(tmp_path / "a")
    torch.testing.assert_close(again(x), small(x), rtol=0, atol=0)
