"""Pictures of what a trained network does, written into the run directory at the end of a run.

A loss curve says little about a segmentation or an autoencoder; a row of inputs next to the
predicted and true masks (or the reconstructions) shows at once whether it learnt anything.
Only image-shaped outputs ([C, H, W]) get one; the samples are the first of the validation split.
"""

from __future__ import annotations

from pathlib import Path

from netspec.training.tasks import INPUT, RECONSTRUCTION, SEGMENTATION, target_of

PREVIEW_SAMPLES = 8


def _image_like(shape) -> bool:
    return len(shape) == 3 and shape[0] in (1, 3)


def previewed(heads, output_shapes) -> list:
    """The heads that get a picture: segmentation masks [C, H, W], image-shaped reconstructions."""
    pictured = {SEGMENTATION: lambda shape: len(shape) == 3, RECONSTRUCTION: _image_like}
    return [h for h in heads if h.task in pictured and pictured[h.task](tuple(output_shapes[h.index]))]


def write_previews(module, splits, run_dir: Path, count: int = PREVIEW_SAMPLES) -> list[Path]:
    """``predictions.png`` (``predictions_<output>.png`` with several outputs); returns the files."""
    import torch

    from netspec.training.pictures import image_to_rgb, mask_to_rgb, save_comparison

    heads = previewed(module.heads, module.output_shapes)
    if not heads:
        return []
    dataset = splits.val if len(splits.val) else splits.train
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    x = torch.stack([torch.as_tensor(item[0]) for item in items])
    was_training = module.training
    module.eval()
    with torch.inference_mode():
        outs = module(x.to(module.device))
    module.train(was_training)
    norm = splits.normalization
    inputs = [image_to_rgb(sample, norm) for sample in x] if _image_like(tuple(x.shape[1:])) else None
    written = []
    for head in heads:
        out = (outs[head.index] if module.several_outputs else outs).float().cpu()
        columns = [("input", inputs)] if inputs is not None else []
        if head.task == SEGMENTATION:
            true = [target_of(head, *item) for item in items]
            classes, ignore = head.num_classes, head.ignore_index
            columns.append(("predicted", [mask_to_rgb(m, classes, ignore) for m in out.argmax(1)]))
            columns.append(("true", [mask_to_rgb(torch.as_tensor(m), classes, ignore) for m in true]))
        else:
            assert head.target == INPUT
            columns.append(("reconstructed", [image_to_rgb(o, norm) for o in out]))
        name = "predictions.png" if len(heads) == 1 else f"predictions_{head.output}.png"
        save_comparison(run_dir / name, columns)
        written.append(run_dir / name)
    return written
