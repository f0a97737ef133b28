import sys

from app.embedded_db.cli import main

if __name__ == "__main__":
    sys.exit(main())
