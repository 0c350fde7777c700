"""The model summary at the start of fitting: layers and parameter counts, without Lightning's FLOPs column."""

from typing import Any

from pytorch_lightning.callbacks import RichModelSummary
from pytorch_lightning.utilities.model_summary.model_summary import get_formatted_model_size, get_human_readable_count

FLOPS_COLUMN = "FLOPs"


class ParameterSummary(RichModelSummary):
    """Lightning's rich layer table (name, type, parameters, mode) and parameter totals, minus the FLOPs column and
    total: Lightning counts FLOPs only when a module sets `example_input_array`, so for these models it printed 0."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name != FLOPS_COLUMN]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        table.add_column(" ", style="dim")
        for name, _ in columns[1:]:
            table.add_column(name, justify="left" if name in ("Name", "Type", "Mode") else "right")
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        totals = Table.grid(expand=True)
        totals.add_row(f"[bold]Trainable params[/]: {get_human_readable_count(trainable_parameters)}")
        totals.add_row(
            f"[bold]Non-trainable params[/]: {get_human_readable_count(total_parameters - trainable_parameters)}"
        )
        totals.add_row(f"[bold]Total params[/]: {get_human_readable_count(total_parameters)}")
        totals.add_row(f"[bold]Total estimated model params size (MB)[/]: {get_formatted_model_size(model_size)}")
        totals.add_row(f"[bold]Modules in train mode[/]: {total_training_modes['train']}")
        totals.add_row(f"[bold]Modules in eval mode[/]: {total_training_modes['eval']}")
        console = get_console()
        console.print(table)
        console.print(totals)
