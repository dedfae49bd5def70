"""The report's published numbers (REFERENCE.md), which reproduction.md sets beside ours."""

from __future__ import annotations

# Column labels of the study, in the report's order: model -> the report's name for it.
REPORT_NAMES = {
    "model1": "model 1",
    "model2": "model 2",
    "custom1": 'custom 1 ("9")',
    "custom2": 'custom 2 ("10")',
}
TOTAL_VARIANCE = {"model1": 56.7, "model2": 69.9, "custom1": 49.1, "custom2": 41.5}
KL_FAITHFUL = {"model1": 0.818, "model2": 0.773, "custom1": 5.616, "custom2": 3.565}
# Table 1, all digits: mean per-image RMSE of the direct and the (naive) diffusion reconstruction.
TABLE1_ALL = {
    "custom1": {"direct": 0.200, "diffusion": 0.372},
    "custom2": {"direct": 0.237, "diffusion": 0.344},
}
# Validation-loss landmarks: model -> {epoch: loss}.
VAL_LOSS = {
    "model1": {0: 0.059, 10: 0.0243, 40: 0.0195, 120: 0.0182, 400: 0.0175},
    "model2": {80: 0.0170},
    "custom1": {0: 0.0735, 20: 0.0515},
    "custom2": {140: 0.0254},
}
# What the report says of its samples during training (its sections on each model), by epoch.
QUALITY_CLAIMS = {
    "model1": {
        40: "symbols, not recognisable digits",
        60: "the first that resemble digits",
        120: "higher fidelity; analysed",
    },
    "model2": {80: "the highest quality; analysed", 100: "low quality, 'fragmented' symbols"},
    "custom1": {20: "quality at its optimum; past it diversity falls (almost only ones)"},
}
