"""hepml.optim: SGD, Adam, AdamW (fused C updates) and learning-rate schedules, as torch.optim."""
from . import lr_scheduler
from .adam import Adam, Adamax, AdamW
from .optimizer import Optimizer
from .sgd import SGD
