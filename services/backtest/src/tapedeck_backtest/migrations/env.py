from tapedeck_backtest.models import Base
from tapedeck_common.migrations import run_env

run_env(Base.metadata)
