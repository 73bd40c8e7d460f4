"""ngdformer: a softmax attention layer that performs normalized gradient descent in context.

A NumPy teaching implementation of Zhang & Cao, *Transformers Efficiently Perform
In-Context Logistic Regression via Normalized Gradient Descent* (arXiv:2605.06609).
Every gradient is derived by hand. Glossary: n context size, d input dimension,
D = 2d, N = n + 1 tokens, B batch, eta step size, L depth (number of applications of a
layer), W, V layer weights, Z tokens (columns).

The public names below are grouped by concept. The layer and the looped model are the
textbook versions, written to be read; :mod:`ngdformer.fast` holds their fast twins.
"""

from . import fast
# Data: tasks and their embedding as tokens
from .tasks import embed, read_weights, sample_points, sample_tasks, sample_w_star
# Losses and solvers: margins, losses, GD, NGD, the max-margin reference
from .losses import (exp_log_loss, exp_loss, exp_loss_grad, logistic_loss, logistic_loss_grad, margins,
                     ngd_coefficients, sigmoid, squared_hinge_loss, squared_hinge_loss_grad, squared_loss,
                     squared_loss_grad)
from .solvers import (MaxMarginResult, gd, gd_step, kkt_residuals, max_margin, max_margin_dual, ngd, ngd_step,
                      normalized_margin)
# The layer: softmax attention forward and backward, and the per-token reference
from .attention import (AttentionCache, attention_backward, attention_forward, attention_naive, softmax,
                        softmax_backward)
# Elementwise attention: the softmax replaced by a function of each score; one GD step per layer
from .elementwise import (ACTIVATION_LOSS, ACTIVATIONS, ElementwiseCache, elementwise_attention_backward,
                          elementwise_attention_forward, elementwise_attention_naive, elementwise_one_step_loss,
                          elementwise_trajectory, gd_weights, train_elementwise_layer)
# The construction: W*, V*, stacked and looped models
from .construction import (context_is_inert, looped_backward, looped_forward, looped_forward_with_cache,
                           ngd_weights, stack_backward, stack_forward)
from .fast import looped_trajectory
from .variants import (preconditioned_ngd_step, preconditioned_weights, sink_loss, sink_loss_grad, sink_step,
                       sink_weights)
# Training: optimizers, one-step supervision, looped models from scratch
from .optim import AdamState, SGDState, adam_init, adam_update, make_optimizer, sgd_init, sgd_update
from .training import block_scales, distance_to_construction, off_identity, one_step_loss, train_one_step_layer
from .looped_training import end_loss, looped_loss, train_looped
# Evaluation: metrics, directions, distribution shifts
from .metrics import accuracy, cosine, moving_average, normalized_difference, relative_difference
from .directions import angle
from .boundaries import decision_grid, margin_fraction, separator_segment
from .ood import Shift, default_shifts, evaluate_ood, format_ood_table
# Plots: one colour per quantity across the course
from .plots import COLORS, decision_boundaries, depth_curves, weight_heatmap
# Checking gradients
from .gradcheck import (assert_gradients_close, check_directions, directional_derivative, gradient_errors,
                        numeric_jacobian, rel_error)
# Persistence
from .persistence import SavedWeights, load_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    # data
    "sample_tasks", "sample_points", "sample_w_star", "embed", "read_weights",
    # losses and solvers
    "margins", "exp_loss", "exp_loss_grad", "exp_log_loss", "logistic_loss", "logistic_loss_grad", "sigmoid",
    "ngd_coefficients", "gd_step", "ngd_step", "gd", "ngd", "max_margin", "max_margin_dual", "MaxMarginResult",
    "kkt_residuals", "normalized_margin", "squared_loss", "squared_loss_grad", "squared_hinge_loss",
    "squared_hinge_loss_grad",
    # the layer
    "softmax", "softmax_backward", "attention_forward", "attention_backward", "AttentionCache", "attention_naive",
    # elementwise attention
    "ACTIVATIONS", "ACTIVATION_LOSS", "elementwise_attention_forward", "elementwise_attention_backward",
    "ElementwiseCache", "elementwise_attention_naive", "gd_weights", "elementwise_trajectory",
    "elementwise_one_step_loss", "train_elementwise_layer",
    # the construction and the looped model
    "ngd_weights", "context_is_inert", "stack_forward", "stack_backward", "looped_forward",
    "looped_forward_with_cache", "looped_backward", "looped_trajectory", "sink_weights", "sink_loss",
    "sink_loss_grad", "sink_step", "preconditioned_weights", "preconditioned_ngd_step", "fast",
    # training
    "sgd_init", "sgd_update", "SGDState", "adam_init", "adam_update", "AdamState", "make_optimizer",
    "one_step_loss", "train_one_step_layer", "block_scales", "distance_to_construction", "off_identity",
    "end_loss", "looped_loss", "train_looped",
    # evaluation
    "cosine", "normalized_difference", "relative_difference", "accuracy", "moving_average", "angle",
    "separator_segment", "decision_grid", "margin_fraction", "Shift", "default_shifts", "evaluate_ood",
    "format_ood_table",
    # plots
    "COLORS", "weight_heatmap", "depth_curves", "decision_boundaries",
    # checking gradients
    "rel_error", "gradient_errors", "assert_gradients_close", "check_directions", "directional_derivative",
    "numeric_jacobian",
    # persistence
    "save_weights", "load_weights", "SavedWeights",
]
