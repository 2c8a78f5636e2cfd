using Leuko.Cli;

return await LeukoCommand.Create().Parse(args).InvokeAsync();
