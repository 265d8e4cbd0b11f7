from .config_check import ConfigError, check_config

__all__ = ['ConfigError', 'check_config']
