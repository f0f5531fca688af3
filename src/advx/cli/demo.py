"""``advx demo`` placeholder until the main-job issue lands."""

import click


@click.command()
def command() -> None:
    """Run the embedded default demo (placeholder)."""
    click.echo("advx demo: not built yet (see the main-job issue)")
