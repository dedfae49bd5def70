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
# Table 1: mean per-image RMSE (the report's "MSE") of the direct and the (naive) diffusion
# reconstruction, per digit and over all ("All"), as reconstruction.json keys its rows.
DIGITS = (*(str(d) for d in range(10)), "All")
TABLE1 = {
    "custom1": {
        "direct": dict(zip(DIGITS, (0.21989, 0.15915, 0.21640, 0.21909, 0.19249, 0.20621,
                                    0.21506, 0.19059, 0.22683, 0.19948, 0.20004), strict=True)),
        "diffusion": dict(zip(DIGITS, (0.38817, 0.35128, 0.37007, 0.38387, 0.36590, 0.39696,
                                       0.36466, 0.36773, 0.37242, 0.37203, 0.37169), strict=True)),
    },
    "custom2": {
        "direct": dict(zip(DIGITS, (0.2735, 0.18975, 0.25107, 0.23754, 0.22798, 0.26052,
                                    0.24184, 0.24167, 0.24823, 0.23215, 0.23684), strict=True)),
        "diffusion": dict(zip(DIGITS, (0.36438, 0.33337, 0.34349, 0.36732, 0.3294, 0.34466,
                                       0.35017, 0.34073, 0.3481, 0.34374, 0.34449), strict=True)),
    },
}  # fmt: skip
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
