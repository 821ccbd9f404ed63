//! Throwaway PostgreSQL for tests (in progress).
