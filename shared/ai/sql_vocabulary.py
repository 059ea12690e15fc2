"""What a question's SQL may say: the syntax and the functions the SQL gate admits.

An allow-list, not a deny-list: every node of the parsed query must be one of these sqlglot
classes (matched exactly, so a subclass such as `ReadCSV` is never admitted through `Func`), and
a function sqlglot has no class for (`exp.Anonymous`) must be one of `ANONYMOUS_FUNCTIONS` by
name. Whatever sqlglot parses into anything else (a statement, a table function, a lambda, a
placeholder, `INTO`, `PIVOT`, `TABLESAMPLE`, a new construct of a future sqlglot) is refused.

The functions are the read-only analytics an answer over gold tables needs: aggregates, window
functions, arithmetic, conditionals, strings, dates. Left out on purpose: anything reading
files, settings, variables, the environment or the catalog (`read_*`, `glob`, `getenv`,
`current_setting`, `getvariable`, `duckdb_*`, `pragma_*`, `query`, `query_table`), and scalar
functions that can allocate without bound from a tiny input (`repeat`, `lpad`, `rpad`,
`format`, `printf`, `range`, `generate_series`), which DuckDB's memory limit may not cover.
"""

from __future__ import annotations

from sqlglot import exp

# The clauses and operators of one read-only query.
QUERY_SYNTAX: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.Select,
        exp.Union,
        exp.Intersect,
        exp.Except,
        exp.With,
        exp.CTE,
        exp.Subquery,
        exp.From,
        exp.Join,
        exp.Table,
        exp.TableAlias,
        exp.Where,
        exp.Group,
        exp.Rollup,
        exp.Cube,
        exp.GroupingSets,
        exp.Having,
        exp.Qualify,
        exp.Order,
        exp.Ordered,
        exp.Limit,
        exp.Offset,
        exp.Window,
        exp.WindowSpec,
        exp.Filter,
        exp.WithinGroup,
        exp.IgnoreNulls,
        exp.RespectNulls,
        exp.Distinct,
        exp.Star,
        exp.Column,
        exp.Identifier,
        exp.Alias,
        exp.Literal,
        exp.Null,
        exp.Boolean,
        exp.Var,  # a keyword argument such as the unit of EXTRACT, INTERVAL or DATE_TRUNC
        exp.Interval,
        exp.DataType,
        exp.DataTypeParam,
        exp.Paren,
        exp.Tuple,
        exp.Neg,
        exp.Not,
        exp.And,
        exp.Or,
        exp.Add,
        exp.Sub,
        exp.Mul,
        exp.Div,
        exp.IntDiv,
        exp.Mod,
        exp.Pow,
        exp.DPipe,
        exp.EQ,
        exp.NEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.NullSafeEQ,
        exp.NullSafeNEQ,
        exp.Is,
        exp.In,
        exp.Between,
        exp.Like,
        exp.ILike,
        exp.Escape,
        exp.Exists,
        exp.Any,
        exp.All,
        exp.AtTimeZone,
        exp.Case,
        exp.If,
        exp.Cast,
        exp.TryCast,
        exp.Coalesce,
        exp.Nullif,
        exp.Columns,  # DuckDB's COLUMNS('regex'): columns of the tables read, nothing more
    }
)

AGGREGATES: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.Count,
        exp.CountIf,
        exp.Sum,
        exp.Avg,
        exp.Min,
        exp.Max,
        exp.Median,
        exp.Mode,
        exp.Quantile,
        exp.PercentileCont,
        exp.PercentileDisc,
        exp.ApproxQuantile,
        exp.ApproxDistinct,
        exp.Stddev,
        exp.StddevSamp,
        exp.StddevPop,
        exp.Variance,
        exp.VariancePop,
        exp.Corr,
        exp.CovarSamp,
        exp.CovarPop,
        exp.RegrSlope,
        exp.RegrIntercept,
        exp.RegrR2,
        exp.Kurtosis,
        exp.Skewness,
        exp.LogicalAnd,
        exp.LogicalOr,
        exp.GroupConcat,
        exp.ArrayAgg,
        exp.ArgMax,
        exp.ArgMin,
        exp.First,
        exp.Last,
        exp.AnyValue,
    }
)

WINDOW_FUNCTIONS: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.RowNumber,
        exp.Rank,
        exp.DenseRank,
        exp.PercentRank,
        exp.CumeDist,
        exp.Ntile,
        exp.Lag,
        exp.Lead,
        exp.FirstValue,
        exp.LastValue,
        exp.NthValue,
    }
)

SCALAR_FUNCTIONS: frozenset[type[exp.Expr]] = frozenset(
    {
        # numbers
        exp.Abs,
        exp.Round,
        exp.Ceil,
        exp.Floor,
        exp.Trunc,
        exp.Sqrt,
        exp.Cbrt,
        exp.Ln,
        exp.Log,
        exp.Exp,
        exp.Sign,
        exp.Pi,
        exp.Greatest,
        exp.Least,
        exp.IsNan,
        exp.IsInf,
        # text
        exp.Lower,
        exp.Upper,
        exp.Length,
        exp.Trim,
        exp.Substring,
        exp.Left,
        exp.Right,
        exp.Replace,
        exp.Concat,
        exp.ConcatWs,
        exp.StartsWith,
        exp.EndsWith,
        exp.Contains,
        exp.StrPosition,
        exp.SplitPart,
        exp.RegexpLike,  # DuckDB's regular expressions are RE2: linear time
        exp.RegexpFullMatch,
        exp.RegexpExtract,
        exp.RegexpReplace,
        exp.Reverse,
        exp.Initcap,
        # dates and times
        exp.CurrentDate,
        exp.CurrentTimestamp,
        exp.DateTrunc,
        exp.TimestampTrunc,
        exp.DateBin,  # time_bucket
        exp.Extract,
        exp.DateDiff,
        exp.DateAdd,
        exp.DateSub,
        exp.TimeToStr,  # strftime
        exp.StrToTime,  # strptime
        exp.TimeToUnix,  # epoch
        exp.UnixToTime,  # to_timestamp, epoch_ms
        exp.DateFromParts,  # make_date
        exp.TimestampFromParts,  # make_timestamp
        exp.LastDay,
        exp.Dayname,
        exp.Monthname,
        exp.Year,
        exp.Quarter,
        exp.Month,
        exp.Week,
        exp.WeekOfYear,
        exp.Day,
        exp.DayOfWeek,
        exp.DayOfWeekIso,
        exp.DayOfMonth,
        exp.DayOfYear,
        exp.Hour,
        exp.Minute,
        exp.Second,
    }
)

# DuckDB functions sqlglot parses as `exp.Anonymous`, by lower-case name.
ANONYMOUS_FUNCTIONS: frozenset[str] = frozenset(
    {
        "mean",
        "product",
        "fsum",
        "favg",
        "geomean",
        "entropy",
        "arbitrary",
        "iff",
        "strlen",
        "prefix",
        "suffix",
        "isfinite",
        "date_part",
        "datepart",
        "date_sub",
        "datesub",
        "age",
        "now",
        "get_current_timestamp",
        "isoyear",
        "yearweek",
        "weekday",
        "millisecond",
        "microsecond",
        "epoch_us",
        "to_years",
        "to_months",
        "to_weeks",
        "to_hours",
        "to_minutes",
        "to_seconds",
    }
)

ALLOWED_NODES: frozenset[type[exp.Expr]] = (
    QUERY_SYNTAX | AGGREGATES | WINDOW_FUNCTIONS | SCALAR_FUNCTIONS | {exp.Anonymous}
)
