from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from console.engine_client import EngineClientError, generate_curve_keys


class Command(BaseCommand):
    help = (
        "Generate the CURVE key pairs of the engine and the console into ENGINE_CURVE_KEYS_DIR (or --dir). The "
        "engine's config file ([security] keys_dir) must name the same directory."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dir", type=Path, default=None, help="directory (default: ENGINE_CURVE_KEYS_DIR)")
        parser.add_argument("--force", action="store_true", help="replace existing keys")

    def handle(self, *args, dir: Path | None = None, force: bool = False, **options):
        directory = Path(dir or settings.ENGINE_CURVE_KEYS_DIR)
        try:
            written = generate_curve_keys(directory, overwrite=force)
        except EngineClientError as exc:
            raise CommandError(exc.reason) from None
        for path in written:
            self.stdout.write(f"wrote {path}")
