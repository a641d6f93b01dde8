// Open a DuckDB file read-only with @duckdb/node-api (Evidence's driver) and print a query's rows
// as JSON: node read_duckdb.mjs <database file> <sql>
import { DuckDBInstance } from "@duckdb/node-api";

const [file, sql] = process.argv.slice(2);
const instance = await DuckDBInstance.create(file, { access_mode: "READ_ONLY" });
const connection = await instance.connect();
const reader = await connection.runAndReadAll(sql);
const rows = reader.getRowObjectsJson();
console.log(JSON.stringify({ version: (await (await connection.runAndReadAll("select version() as v")).getRowObjectsJson())[0].v, rows }));
connection.closeSync();
