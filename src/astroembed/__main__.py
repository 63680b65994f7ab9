from astroembed.cli import app

app()
