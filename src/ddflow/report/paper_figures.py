"""Paper figures that print numbers: the table holding them and how its settings are drawn.

Kept free of heavy imports: the workflow reads it at parse time to name the figures.
"""

PAPER_FIGURES = {
    "cda/figure5": {"table": "cda/table18", "x": "milestone", "series": "crop_schedule"},
}


def figure_for(table: str) -> list[str]:
    return [f for f, spec in PAPER_FIGURES.items() if spec["table"] == table]


def file_stem(name: str) -> str:
    """`cda/table4` -> `cda-table4`: a paper item's file name."""
    return name.replace("/", "-")
