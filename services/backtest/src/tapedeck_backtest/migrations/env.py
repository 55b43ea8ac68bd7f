from tapedeck_common.migrations import run_env
from tapedeck_backtest.models import Base

run_env(Base.metadata)
