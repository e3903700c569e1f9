"""C# sources that datasets' own harnesses provide and Debian's mono does not (pure text).

- ``COMPARE_NET_OBJECTS``: MBXP's C# tests call ``new CompareLogic().Compare(a, b).AreEqual``
  from the KellermanSoftware.CompareNetObjects NuGet package, which mxeval's .NET project
  references. NuGet is not reachable from here, so this is a compatible subset with the
  package's default semantics: values of different runtime types differ, collections
  compare element by element in order (dictionaries in enumeration order), other objects
  by their public properties and fields.
- ``FATAL_DEBUG_ASSERT``: MultiPL-E's C# tests use ``Debug.Assert``; on mono a failed one
  only prints a stack trace and the program still exits 0, so MultiPL-E's harness fails
  runs whose stderr shows ``DefaultTraceListener.Fail``. This global ``Debug`` class
  (found before ``using System.Diagnostics`` by C#'s name lookup) throws instead, so the
  exit code says it; everything else forwards to ``System.Diagnostics.Debug``.
"""

from __future__ import annotations

import re

COMPARE_NET_OBJECTS = """
namespace KellermanSoftware.CompareNetObjects
{
    using System;
    using System.Collections;
    using System.Reflection;

    public class ComparisonResult
    {
        public bool AreEqual { get; internal set; }
        public bool ExceededDifferences { get { return !AreEqual; } }
        public string DifferencesString { get; internal set; }
    }

    public class CompareLogic
    {
        public ComparisonResult Compare(object expected, object actual)
        {
            bool same = Same(expected, actual);
            return new ComparisonResult {
                AreEqual = same, DifferencesString = same ? "" : "the objects differ" };
        }

        static bool Same(object a, object b)
        {
            if (a == null || b == null) return a == null && b == null;
            Type type = a.GetType();
            if (type != b.GetType()) return false;
            if (a is string || type.IsPrimitive || type.IsEnum || a is decimal || a is DateTime)
                return a.Equals(b);
            IDictionary da = a as IDictionary;
            if (da != null) return SameSequence(Entries(da), Entries((IDictionary)b));
            IEnumerable ea = a as IEnumerable;
            if (ea != null) return SameSequence(ea, (IEnumerable)b);
            const BindingFlags flags = BindingFlags.Public | BindingFlags.Instance;
            foreach (PropertyInfo p in type.GetProperties(flags))
                if (p.CanRead && p.GetIndexParameters().Length == 0
                        && !Same(p.GetValue(a, null), p.GetValue(b, null)))
                    return false;
            foreach (FieldInfo f in type.GetFields(flags))
                if (!Same(f.GetValue(a), f.GetValue(b))) return false;
            return true;
        }

        static IEnumerable Entries(IDictionary d)
        {
            foreach (DictionaryEntry e in d) { yield return e.Key; yield return e.Value; }
        }

        static bool SameSequence(IEnumerable a, IEnumerable b)
        {
            IEnumerator x = a.GetEnumerator(), y = b.GetEnumerator();
            while (true)
            {
                bool more = x.MoveNext();
                if (more != y.MoveNext()) return false;
                if (!more) return true;
                if (!Same(x.Current, y.Current)) return false;
            }
        }
    }
}
"""

FATAL_DEBUG_ASSERT = """
static class Debug
{
    static void Check(bool condition, string message)
    {
        if (!condition) throw new System.Exception("Debug.Assert failed" + message);
    }
    public static void Assert(bool condition) { Check(condition, ""); }
    public static void Assert(bool condition, string message) { Check(condition, ": " + message); }
    public static void Assert(bool condition, string message, string detail)
    {
        Check(condition, ": " + message + " " + detail);
    }
    public static void Fail(string message) { Check(false, ": " + message); }
    public static void Write(object value) { System.Diagnostics.Debug.Write(value); }
    public static void WriteLine(object value) { System.Diagnostics.Debug.WriteLine(value); }
    public static void WriteLine(string format, params object[] args)
    {
        System.Diagnostics.Debug.WriteLine(format, args);
    }
    public static void Print(string message) { System.Diagnostics.Debug.Print(message); }
}
"""

_USES_COMPARE_NET_OBJECTS = re.compile(
    r"^\s*using\s+KellermanSoftware\.CompareNetObjects\s*;", re.M
)
_DEFINES_COMPARE_NET_OBJECTS = re.compile(r"namespace\s+KellermanSoftware\.CompareNetObjects\b")


def with_compare_net_objects(program: str) -> str:
    """``program`` plus the CompareNetObjects subset when it uses that package."""
    if _USES_COMPARE_NET_OBJECTS.search(program) and not _DEFINES_COMPARE_NET_OBJECTS.search(
        program
    ):
        return program + "\n" + COMPARE_NET_OBJECTS
    return program


def with_fatal_debug_assert(program: str) -> str:
    """``program`` with failing ``Debug.Assert`` calls ending the run with an exception."""
    if "Debug." in program and not re.search(r"\bclass\s+Debug\b", program):
        return program + "\n" + FATAL_DEBUG_ASSERT
    return program
