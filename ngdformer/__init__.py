"""ngdformer: a softmax attention layer that performs normalized gradient descent in context.

A NumPy teaching implementation of Zhang & Cao, *Transformers Efficiently Perform
In-Context Logistic Regression via Normalized Gradient Descent* (arXiv:2605.06609).
Every gradient is derived by hand. Glossary: n context size, d input dimension,
D = 2d, N = n + 1, B batch, eta step size, L layers or loops, W, V layer weights,
Z tokens (columns).
"""

from .attention import (AttentionCache, attention_backward, attention_forward, attention_naive, query_loop, softmax,
                        softmax_backward)
from .attention_reference import attention_backward_reference, attention_forward_reference
from .construction import (context_is_inert, looped_backward, looped_forward, looped_forward_with_cache,
                           ngd_weights, stack_backward, stack_forward)
from .gradcheck import (assert_gradients_close, check_directions, directional_derivative, gradient_errors,
                        numeric_jacobian, rel_error)
from .metrics import accuracy, cosine, moving_average, normalized_difference, relative_difference
from .losses import (exp_log_loss, exp_loss, exp_loss_grad, logistic_loss, logistic_loss_grad, margins,
                     ngd_coefficients, sigmoid)
from .solvers import (MaxMarginResult, gd, gd_step, kkt_residuals, max_margin, max_margin_dual, ngd, ngd_step,
                      normalized_margin)
from .tasks import embed, read_weights, sample_points, sample_tasks, sample_w_star
from .boundaries import decision_grid, margin_fraction, separator_segment
from .directions import angle
from .variants import (preconditioned_ngd_step, preconditioned_weights, sink_loss, sink_loss_grad, sink_step,
                       sink_weights)
from .looped_training import end_loss, looped_loss, train_looped
from .ood import Shift, default_shifts, evaluate_ood, format_ood_table
from .optim import AdamState, SGDState, adam_init, adam_update, make_optimizer, sgd_init, sgd_update
from .persistence import SavedWeights, load_weights, save_weights
from .training import coefficients, distance_to_construction, off_identity, one_step_loss, train_one_step_layer

__version__ = "0.1.0"
