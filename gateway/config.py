"""Settings, read from the environment by ``cli.py`` only; everything else receives a value."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """The gateway's configuration (see the README's configuration table)."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", extra="forbid", frozen=True, populate_by_name=True
    )

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
    upstream_deadline: float = Field(
        default=25.0,
        gt=0,
        le=300,
        description="Seconds for a whole upstream call, retries included.",
    )
    upstream_max_retries: int = Field(default=2, ge=0, le=10)
    upstream_concurrency: int = Field(
        default=32, ge=1, le=1024, description="Upstream calls in flight per process."
    )
    max_body_bytes: int = Field(default=1_000_000, ge=1_000)
    max_query_bytes: int = Field(default=20_000, ge=100)
    max_tokens: int = Field(default=2_000, ge=10)
    max_depth: int = Field(default=12, ge=2)
    max_aliases: int = Field(default=30, ge=0)
    max_upstream_calls: int = Field(
        default=20, ge=1, description="Upstream calls one operation may cause."
    )
    max_selections: int = Field(
        default=200, ge=10, description="Selections (fields, fragments) one document may hold."
    )
    max_seat_ids_per_operation: int = Field(
        default=1_000, ge=1, description="Seat ids one operation may send upstream in total."
    )
    introspection: bool = Field(default=True, description="Answer introspection queries.")
    fast_path: bool = Field(
        default=True, description="Project pure-data operations without graphql-core."
    )
    http_fast_lane: bool = Field(
        default=True, description="Answer plain JSON POSTs without FastAPI's routing."
    )
    graphiql: bool = Field(default=True, description="Serve GraphiQL on GET /graphql.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Browser origins allowed to call the API."
    )
    log_level: str = Field(default="info")
    log_format: Literal["json", "text"] = Field(default="json")
    shutdown_timeout: int = Field(
        default=20, ge=0, description="Seconds in-flight requests get to finish on SIGTERM."
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @property
    def embedded(self) -> bool:
        return not self.metronome_base_url
