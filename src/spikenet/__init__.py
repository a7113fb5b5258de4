"""SpikeNet: spiking neural networks on discrete-time dynamic graphs (SpikingJelly + PyTorch)."""

import warnings

# SpikingJelly 0.0.0.0.14 decorates helpers with torch.jit.script, deprecated in recent torch;
# the warning repeats at every import and says nothing about this package.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)

__version__ = "0.1.0"
