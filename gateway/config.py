"""Settings, read from the environment by ``cli.py`` only; everything else receives a value."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The gateway's configuration (see the README's configuration table)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    metronome_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("METRONOME_BASE_URL"),
        description="The billing API; unset means the embedded stand-in.",
    )
    metronome_bearer_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("METRONOME_BEARER_TOKEN"),
        description="Token for every upstream call; unset means forward the caller's.",
    )
    upstream_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds per upstream attempt."
    )
    graphiql: bool = Field(default=True, description="Serve GraphiQL on GET /graphql.")
    log_level: str = Field(default="info")

    @property
    def embedded(self) -> bool:
        return not self.metronome_base_url
