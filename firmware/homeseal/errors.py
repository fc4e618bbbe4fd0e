# The configuration error, in a module of its own so that the config parser
# can be unloaded after boot while the rest of the firmware still names it.


class ConfigError(Exception):
    def __init__(self, field, message):
        super().__init__("%s: %s" % (field, message))
        self.field = field
