"""Names of the metrics a trial reports, in one place.

Trainables report them per epoch (one Tune iteration = one epoch), the results store
keeps them, and the CLI, export and reports read them under these names.
"""

EPOCH = "epoch"
TRAIN_LOSS = "train_loss"
TRAIN_ACCURACY = "train_accuracy"
VAL_LOSS = "val_loss"
VAL_ACCURACY = "val_accuracy"
TEST_LOSS = "test_loss"
TEST_ACCURACY = "test_accuracy"
# Effective Gradient Flow (Tessera §3.2.2): mean over maskable layers of ||grad * mask||_p,
# averaged over the epoch's training steps.
EGF_1 = "egf_1"
EGF_2 = "egf_2"
# The classic whole-network gradient norm ||concat(all grads)||_p, for comparison.
GRAD_NORM_1 = "grad_norm_1"
GRAD_NORM_2 = "grad_norm_2"
ACTIVE_WEIGHTS = "active_weights"
TOTAL_WEIGHTS = "total_weights"
# Multiply-accumulates of the maskable layers per example (active weights x output positions),
# reported by search trials; the cost a ``budget.resource: flops`` caps.
ACTIVE_FLOPS = "active_flops"
TOTAL_FLOPS = "total_flops"
REALIZED_DENSITY = "realized_density"
EPOCH_SECONDS = "epoch_seconds"
LR = "lr"

# Scalar metrics reported every epoch, in display order.
EPOCH_SCALARS = (
    EPOCH, TRAIN_LOSS, TRAIN_ACCURACY, VAL_LOSS, VAL_ACCURACY, EGF_1, EGF_2,
    GRAD_NORM_1, GRAD_NORM_2, ACTIVE_WEIGHTS, TOTAL_WEIGHTS, EPOCH_SECONDS, LR,
)

# What a search may rank by (``search.metric``): the scalars every epoch reports that say
# something about a trial (not its epoch counter, learning rate, timing or layer sizes).
SEARCH_METRICS = (VAL_ACCURACY, VAL_LOSS, TRAIN_ACCURACY, TRAIN_LOSS, EGF_1, EGF_2,
                  GRAD_NORM_1, GRAD_NORM_2, ACTIVE_WEIGHTS)
