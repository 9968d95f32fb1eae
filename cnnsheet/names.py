"""The spelling of every defined name of the walkthrough, in one place.

Formulas read each other's cells through these names ("=loss", "SUMPRODUCT(dense1_in,dense1_w2)"),
and the colour rules reach other sheets only through them, so a sheet that defines a name and a
sheet that reads it must spell it alike: both call the function here. Numbers are 1-based, as the
sheets show them (conv 2, filter 3, output 1). `pass_prefix` is "" for the first pass and
NEW_PASS for the pass after the gradient step, whose names repeat the first pass's.
"""

from __future__ import annotations

NEW_PASS = "new_"

# ---- one of a kind ------------------------------------------------------------------------
CLASS_NAMES = "class_names"  # the Softmax sheet's class column: the drop-downs' list
TARGET_CLASS = "target_class"  # the yellow cell of the Loss sheet
ONEHOT = "onehot"
LOSS = "loss"
DLOGITS = "dlogits"
LEARNING_RATE = "learning_rate"
LOSS_AFTER_STEP = "loss_after_step"
SALIENCY_CLASS = "saliency_class"
SALIENCY = "saliency"
SALIENCY_MODE = "saliency_mode"  # the drop-down: how the saliency pass goes back through a ReLU
SALIENCY_MODES = "saliency_modes"  # its list
SALIENCY_RULE = "saliency_rule"  # the mode's number in that list, which the ReLU formulas read
GRADCAM = "gradcam"  # max(0, sum_k a_k A_k) at the resolution of the last conv block
GRADCAM_IMAGE = "gradcam_image"  # that map brought up to the photo's size
OCCLUSION_KEYS = ("row", "col", "size", "value")  # the four cells of the grey square (Image sheet)
CHOICE_KEYS = ("filter", "row", "col")  # the three yellow cells of a Zoom sheet or a pool's choice


def used(choice: str) -> str:
    """The class a class choice stands for: the one typed, or the predicted one when the yellow
    cell is empty (target_class_used)."""
    return f"{choice}_used"


# ---- the input --------------------------------------------------------------------------
def image(channel: str) -> str:
    """The pixels of one colour of the Image sheet: image_R."""
    return f"image_{channel}"


def occlusion(key: str) -> str:
    """One of the grey square's cells (occlusion_row, ... occlusion_value), or its 0/1 flags of
    the rows ("rows") and columns ("cols") it covers."""
    return f"occlusion_{key}"


def mean(channel: str) -> str:
    return f"mean_{channel}"


def std(channel: str) -> str:
    return f"std_{channel}"


# ---- a pass -------------------------------------------------------------------------------
def conv_kernel(conv: int, f: int, channel: str, pass_prefix: str = "") -> str:
    """Filter f's kernel over one input channel: conv1_f2_R, new_conv2_f1_c3."""
    return f"{pass_prefix}conv{conv}_f{f}_{channel}"


def conv_bias(conv: int, f: int, pass_prefix: str = "") -> str:
    return conv_kernel(conv, f, "bias", pass_prefix)


def flatten(pass_prefix: str = "") -> str:
    return f"{pass_prefix}flatten"


def dense_inputs(dense: int, pass_prefix: str = "") -> str:
    return f"{pass_prefix}dense{dense}_in"


def dense_weights(dense: int, output: int, pass_prefix: str = "") -> str:
    """The column of weights of one output."""
    return f"{pass_prefix}dense{dense}_w{output}"


def dense_bias(dense: int, output: int, pass_prefix: str = "") -> str:
    return f"{pass_prefix}dense{dense}_b{output}"


def logits(pass_prefix: str = "") -> str:
    return f"{pass_prefix}logits"


def probabilities(pass_prefix: str = "") -> str:
    return f"{pass_prefix}probabilities"


# ---- one neuron up close ------------------------------------------------------------------
def zoom(conv: int) -> str:
    """The prefix of Zoom sheet `conv`'s names: zoom1."""
    return f"zoom{conv}"


def pool_choice(pool: int) -> str:
    """The prefix of the names of the choice below Pool sheet `pool`: pool1."""
    return f"pool{pool}"


def choice(prefix: str, key: str) -> str:
    """One of the three yellow cells of a choice: zoom1_filter, pool2_row."""
    return f"{prefix}_{key}"


def zoom_products(conv: int) -> str:
    return f"{zoom(conv)}_products"


def zoom_value(conv: int) -> str:
    return f"{zoom(conv)}_value"


def zoom_field(conv: int, axis: str) -> str:
    """The 0/1 flags of the input's rows ("rows") or columns ("cols") that reach the chosen cell."""
    return f"{zoom(conv)}_field_{axis}"


def pool_max(pool: int) -> str:
    return f"{pool_choice(pool)}_max"
