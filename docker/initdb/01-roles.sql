-- Run once by the postgres image, as its superuser, when the data volume is new.
-- The same roles and database as db/roles.py bootstrap_sql(), with passwords for network logins.
-- Development passwords: change them here and in docker-compose.yml together.

CREATE ROLE "tenantql_owner" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE PASSWORD 'tenantql-owner-dev';
CREATE ROLE "tenantql_app" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB PASSWORD 'tenantql-app-dev';
CREATE DATABASE "tenantql" OWNER "tenantql_owner";
